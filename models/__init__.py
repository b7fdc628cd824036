"""Pure scikit-learn / NumPy model code: baselines, estimators, backtest, metrics (issue 4)."""
