"""Schedules: knob values -> an s_tir.Schedule applied to a task's TIR (one template per family and target class)."""
