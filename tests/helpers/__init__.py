"""What many tests share, one module per job: project.py builds throwaway projects, stages.py runs
a stage and checks a refusal, hostile_data.py makes hostile inputs, properties.py serves the
hypothesis properties, loopback.py and scripted_server.py serve HTTP, synthetic.py writes datasets,
short_run.py proves the numeric modes."""
