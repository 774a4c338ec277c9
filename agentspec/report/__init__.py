"""The weekly operations review over the fleet export: `engine` reads the export into DuckDB, `figures` computes
the review's figures in SQL, `html` renders them as one self-contained HTML file, `cli` is `agentspec report`.
"""
