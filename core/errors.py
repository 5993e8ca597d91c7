"""Errors an examiner sees as one clear line (the CLI prints them without a traceback)."""


class VerityError(Exception):
    """A failure with a message meant for the examiner."""


class EvidenceError(VerityError):
    """The evidence file cannot be read as media (missing, empty, corrupt, no video...)."""


class CancelledError(VerityError):
    """The examiner cancelled the work."""

    def __init__(self, message: str = "cancelled by the examiner") -> None:
        super().__init__(message)


class TerminatedError(KeyboardInterrupt):
    """The process was asked to end (SIGTERM): like Ctrl+C, work stops and is recorded as cancelled."""

    def __init__(self, message: str = "stopped: the process received SIGTERM") -> None:
        super().__init__(message)
