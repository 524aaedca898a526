"""Closed-loop driving: the ego's dynamics, the route it follows, the reference driving policy
that reads only perception, and the safety criteria scored on what the car then does."""
