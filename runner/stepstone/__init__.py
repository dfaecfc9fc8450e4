"""stepstone: durable Python workflows on Kubernetes."""
