from topo.cli.app import main

main(prog_name="topo")
