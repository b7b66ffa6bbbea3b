"""Ground floor: trace.dat bytes -> Arrow tables. No Qt, no sockets."""
