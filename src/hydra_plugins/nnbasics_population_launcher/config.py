"""The launcher's structured config, registered as ``hydra/launcher=nnbasics_population``
(``conf/hydra/launcher/population.yaml`` extends it as ``hydra/launcher=population``)."""

from dataclasses import dataclass
from typing import Optional

from hydra.core.config_store import ConfigStore


@dataclass
class PopulationLauncherConf:
    _target_: str = "hydra_plugins.nnbasics_population_launcher.population_launcher.PopulationLauncher"
    # smallest group trained as a population; smaller groups (and jobs that cannot be grouped)
    # run one by one with the task function, exactly as Hydra's basic launcher runs them
    min_size: int = 2
    # largest population (null = no cap); split bigger groups to bound memory
    max_size: Optional[int] = None
    # jobs whose monitor a population does not batch (monitor.level=full, monitor.figures=true;
    # basic without figures is batched): "sequential" runs them one by one with their monitor;
    # "population" trains them in populations without the monitor (config.yaml says monitor off)
    monitored_jobs: str = "sequential"


ConfigStore.instance().store(group="hydra/launcher", name="nnbasics_population", node=PopulationLauncherConf,
                             provider="nnbasics_population_launcher")
