"""The paper's study as a resumable experiment: source vs scratch vs fine-tuned, over N and K.

`config` parses an experiment file, `data` preprocesses each case once (cached on disk),
`runner` works through the run grid writing one CSV row per run, `report` and `plots` turn
the CSV into a markdown report and two figures.
"""
