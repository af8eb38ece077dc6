"""The engine: backends, prompt assembly, context fitting and runs. No UI code here."""
