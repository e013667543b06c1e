"""The definition language: workflow models, options, conditions and expressions, the graph,
engine nodes, maps, validation, modification and graph export. Pure: no Temporal, no I/O."""
