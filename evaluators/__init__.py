"""The evaluation harness: method plugins, generation backends, scoring, runs, leaderboard."""
