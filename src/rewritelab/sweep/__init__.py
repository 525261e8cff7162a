"""Sweeps: experiment files -> grid points -> runs on an executor -> a results database."""

from rewritelab.sweep.database import ResultsDatabase
from rewritelab.sweep.experiment import Experiment, Point, load_experiment
from rewritelab.sweep.runner import run_point, run_sweep

__all__ = ["Experiment", "Point", "ResultsDatabase", "load_experiment", "run_point", "run_sweep"]
