"""A local tuning run whose Optuna journal is on Cloud Storage (``study_storage=gs://...``): it is
uploaded after every trial and a run on another machine (a fresh work folder) continues the study.
Against a real Cloud Storage emulator (gcp-storage-emulator), through ``textclf.platform.storage``."""

from tests.pipeline.test_tune import SMALL_SPACE, scripted_trials  # noqa: F401 - a fixture
from textclf.train import TrainSettings
from textclf.tune.settings import TuneSettings


def test_a_study_on_cloud_storage_continues_on_another_machine(gcs_bucket, scripted_trials, tmp_path):  # noqa: F811
    from textclf.tune.study import run_study

    folder = f"gs://{gcs_bucket.name}/studies"

    def tune(n_trials: int, machine: str):
        return run_study(
            "unused",
            {"fingerprint": "f"},
            TrainSettings(learning_rate=1e-3),
            TuneSettings(search_space=SMALL_SPACE, n_trials=n_trials, tune_pruning=False),
            folder,
            str(tmp_path / machine),
        )

    first = tune(2, "first")
    assert first.storage == f"{folder}/optuna-journal.log" and gcs_bucket.blob("studies/optuna-journal.log").exists()
    scripted_trials.clear()
    second = tune(3, "second")
    assert second.study_name == first.study_name and len(second.trials) == 3
    assert len(scripted_trials) == 1, "the two trials finished on the first machine are not run again"
