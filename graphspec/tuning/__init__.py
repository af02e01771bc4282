"""`graphspec tune`: a hyperparameter search over spec addresses on Optuna, trials rejected statically first.

`space` checks a `search:` section and judges sampled specs without TensorFlow or Optuna (validate uses it);
`study` runs the Optuna study, `trials` trains one sampled spec, `results` writes what people read.
"""
