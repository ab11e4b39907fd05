"""The testing kit: a producer under test, and checks that nothing is left behind.

The pytest plugin (viewer.testing.plugin) builds its fixtures on these."""

from viewer.testing.kit import (
    Leftovers,
    LitterCheck,
    Producer,
    ProducerError,
    mappings_since,
    no_litter,
    registry_folder,
    running_producer,
    shm_mappings,
    start_producer,
    unique_name,
)

__all__ = [
    "Leftovers",
    "LitterCheck",
    "Producer",
    "ProducerError",
    "mappings_since",
    "no_litter",
    "registry_folder",
    "running_producer",
    "shm_mappings",
    "start_producer",
    "unique_name",
]
