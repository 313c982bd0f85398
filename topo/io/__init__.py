"""What topo writes and reads back: plan files (plan), exports for schedulers and simulators
(exports), the HTML/Markdown report and its templates (report), and text rendering for the terminal
(render).

Imports every stage below it; never the pipeline or the CLI.
"""
