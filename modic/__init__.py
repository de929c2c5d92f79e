"""modic: Modic changes on sagittal lumbar spine MRI.

Research software, not a medical device: results must not be used for
diagnosis or treatment decisions.
"""

__version__ = "0.1.0"

RESEARCH_NOTICE = (
    "Research use only. modic is not a medical device and has not been cleared "
    "or approved for clinical use; its output must not guide diagnosis or treatment."
)

__all__ = ["__version__", "RESEARCH_NOTICE"]
