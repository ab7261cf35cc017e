"""The training job (`docker run IMAGE train`): SageMaker's config files and channels, the
algorithm contract and its hyperparameters, fitting, checkpoints, evaluation, and the failure
file and exit codes. Never imports serving/."""
