"""Search spaces as data, one small module per space, looked up by `--space NAME`.

Every space is a `SearchSpace` instance with preset values (`curriculum`, `normal`,
`autoencoder`, `kd`, `fusion`); `get_space(name)` finds one, `space.suggest` is the Optuna
define-by-run function for Ray's `OptunaSearch`, and `space.trial_settings(config)` turns the flat
dict Ray hands a trainable into `TrialSettings`.
"""

from search_spaces.base import SearchSpace
from search_spaces.choices import (
    DIRECTIONS,
    RAMP_KEYS,
    RAMP_SCHEDULE_TYPES,
    SEARCHABLE_SCHEDULE_TYPES,
    STEP_KEYS,
    Direction,
    SearchableScheduleType,
)
from search_spaces.ranges import FloatRange, IntRange
from search_spaces.registry import SPACE_NAMES, SPACES, get_space
from search_spaces.settings import FIXED_KEYS, SCHEDULE_PREFIX, SEARCHED_KEYS, TrialSettings
from search_spaces.validation import validate_space

__all__ = [
    "DIRECTIONS",
    "FIXED_KEYS",
    "RAMP_KEYS",
    "RAMP_SCHEDULE_TYPES",
    "SCHEDULE_PREFIX",
    "SEARCHABLE_SCHEDULE_TYPES",
    "SEARCHED_KEYS",
    "SPACES",
    "SPACE_NAMES",
    "STEP_KEYS",
    "Direction",
    "FloatRange",
    "IntRange",
    "SearchSpace",
    "SearchableScheduleType",
    "TrialSettings",
    "get_space",
    "validate_space",
]
