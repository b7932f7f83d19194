"""A Swarm of several hosts: Docker-in-Docker nodes on one machine (`nodes`), the
stack deployed through a manager's engine (`deployment`), Patroni members on
distinct nodes (`placement`) and host faults (`faults`)."""

ENGINE = "swarm-nodes"
