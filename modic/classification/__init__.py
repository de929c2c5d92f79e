"""Modic type of each endplate from its T1/T2 marrow signal relative to the same patient's reference marrow."""
