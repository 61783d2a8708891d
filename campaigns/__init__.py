"""The domain: customers, purchases, events, journeys, enrolments, messages and the policy."""
