"""Thin blueprints: each turns a request into calls on the domain modules."""
