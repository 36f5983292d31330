"""Data for long runs: a sampler and a dataset wrapper that make a resumed run continue exactly, and unreadable
samples reported in one line (``data_faults``)."""
from basicsr_nlattn.data.data_faults import DataFault, data_fault_line, parse_skip_bad
from basicsr_nlattn.data.resumable_samples import BAD_SAMPLE_KEY, ResumableSampler, ResumableSamples, SampleKey

__all__ = [
    'BAD_SAMPLE_KEY', 'DataFault', 'ResumableSampler', 'ResumableSamples', 'SampleKey', 'data_fault_line',
    'parse_skip_bad'
]
