"""Turning repositories into environments: requests, git, repo2docker, the queue."""
