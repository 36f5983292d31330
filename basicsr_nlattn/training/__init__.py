"""The training loop of ``basicsr train`` (``loop``) and the choice of the state it resumes from (``resume``)."""
