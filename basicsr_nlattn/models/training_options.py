"""Which parser reads the training options of a model class: its own (ours), or BasicSR's models' (``sr_options``),
found along the class's MRO, so that a user's subclass of SRModel is read as SRModel is."""
from typing import Any, Callable, Dict, Mapping, Optional

from basicsr.models.sr_model import SRModel
from basicsr.models.srgan_model import SRGANModel

from basicsr_nlattn.models.contrastive_sr_model import ContrastiveSRModel, parse_contrastive_training
from basicsr_nlattn.models.pcl_model import PCLModel, parse_pcl_training
from basicsr_nlattn.models.sr_options import SRTraining, parse_sr_training, parse_srgan_training

TrainingParser = Callable[[Mapping[str, Any], type], SRTraining]

# Most derived first is not needed: the lookup walks the MRO of the model class.
TRAINING_PARSERS: Dict[type, TrainingParser] = {
    PCLModel: parse_pcl_training,
    ContrastiveSRModel: parse_contrastive_training,
    SRGANModel: parse_srgan_training,  # ESRGANModel too
    SRModel: parse_sr_training,
}


def training_parser(model_class: type) -> Optional[TrainingParser]:
    """The parser of the first class in ``model_class.__mro__`` that has one, or None (a model of another family,
    e.g. BasicSR's video models: only the options every model shares are checked)."""
    for klass in model_class.__mro__:
        if klass in TRAINING_PARSERS:
            return TRAINING_PARSERS[klass]
    return None


def parse_training(opt: Mapping[str, Any], model_class: type) -> Optional[SRTraining]:
    """The training options of ``opt`` for a model of ``model_class`` (None when no parser knows the class)."""
    parser = training_parser(model_class)
    return None if parser is None else parser(opt, model_class)
