"""``lopkit``'s command line called in the test's own process."""

from lopkit.cli import main


def run_cli(capsys, *argv):
    """``lopkit argv…`` in this process: (exit code, stdout, stderr). test_cli checks a real
    process's exit and output too."""
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err
