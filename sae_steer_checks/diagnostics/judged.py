"""What every check's verdict is made of: its status and the reason, both from one rule."""

from __future__ import annotations

from typing import Literal

__all__ = ["Judged", "Verdict"]

Verdict = Literal["problem", "fine", "inconclusive"]


class Judged:
    """A check whose ``_judge()`` applies its rule once; ``status`` and ``reason`` read it."""

    def _judge(self) -> tuple[Verdict, str]:
        raise NotImplementedError

    @property
    def status(self) -> Verdict:
        """``problem`` / ``fine`` / ``inconclusive`` as defined in the check's module docstring."""
        return self._judge()[0]

    @property
    def reason(self) -> str:
        """Why :attr:`status` says what it says, in words that match the rule."""
        return self._judge()[1]
