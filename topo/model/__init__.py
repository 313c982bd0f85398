"""The cluster as data: the cluster file and its validation (spec), hardware presets with their
sources (catalog), Slurm host lists (hostlist), the array fabric builder (fabric), graph interchange
(graphio) and the inference of a custom graph's structure (graphinfer).

Owns what a cluster *is*; nothing here routes traffic or solves. Imports only topo.core.
"""
