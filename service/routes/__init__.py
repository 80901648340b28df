"""Thin HTTP routes: parse, call the engine or the store, answer. No logic of their own."""
