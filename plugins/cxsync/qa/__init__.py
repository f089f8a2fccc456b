"""The QA layer over the warehouse: staff, agent matching ("Manage Users") and QA lists."""
