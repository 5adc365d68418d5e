"""Training hooks; importing the package registers them into mmpretrain's HOOKS."""
from .semmae_lambda_hook import SemMAELambdaHook

__all__ = ['SemMAELambdaHook']
