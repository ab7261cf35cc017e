"""SageMaker plumbing for a bring-your-own-algorithm container: paths, config files, failure
file, codecs, errors, the HTTP app and the process supervisor. `algo/train` and
`algo/predictor.py` are the user's code; this package is what they rarely need to open."""
