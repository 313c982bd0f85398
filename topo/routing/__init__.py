"""Loads on a built fabric: the routing engine (ideal ECMP, WCMP, RoCEv2 hashing, Ultra Ethernet
spraying), the structural path for regular Clos fabrics (clos), the max-concurrent-flow LP bound and its
independent checker (lp, lpcheck), kernel loading with argument checks (kernels) and the kernels'
pure-Python twins (pure), and a fabric's figures: bill of materials, bisection, power, all-to-all
(describe).

Imports topo.traffic, topo.model and topo.core; never a solver, a study or an output format.
"""
