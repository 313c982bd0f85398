"""Decisions with OR-Tools CP-SAT: job placement and the link budget, each with an independent
checker that shares no code with its model (place_check, budget_check), and the one place CP-SAT's run
parameters are set (cpsat).

Imports routing, traffic, model and core; never a study, an output format or the CLI.
"""
