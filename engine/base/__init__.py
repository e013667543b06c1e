"""The foundation every layer may use: the error type and codes, where the engine keeps its
files, optional extras, logging. Imports nothing else of the project."""
