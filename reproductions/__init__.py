"""Paper folders. A paper's own Python modules live beside its presets and are referenced from them by `_target_`
as `reproductions.<paper>.<module>.<name>` (losses, callbacks, metrics, datasets, tasks); optrepro.builders puts
the repository root on sys.path so this resolves in every process that builds a run."""
