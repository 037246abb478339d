"""Signal evaluation: templating and PromQL measurement; the pure maths lives in the domain."""
