"""ACD queues, agents and the predictive dialer (applications on the Call API)."""
