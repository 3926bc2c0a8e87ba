"""dj-stripe receivers for the subscription life: each hands the verified event to a service."""
