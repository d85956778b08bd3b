"""Measuring what a program does: funnels per touch, timelines, goals, NPS and the report.

Everything here reads what the engine recorded (the outbox, deliveries, decisions and
events) through ``store/queries/``; nothing works out a rule again.
"""
