"""The campaign engine: run every job of a campaign on a backend (in this process, a local
process pool or Ray), judge each target per frame and per encounter, keep the outcomes in a
resumable results store. The names campaigns use for models, attacks and defences are in
:mod:`.registry` and :mod:`.components`; one job runs in :mod:`.runner`; the run in :mod:`.run`."""
