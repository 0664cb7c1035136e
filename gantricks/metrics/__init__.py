"""Evaluation: Inception Score (paper protocol), FID/KID, in-domain classifier scores."""
