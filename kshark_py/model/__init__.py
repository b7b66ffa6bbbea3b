"""Floor 2: sessions of host + guest streams, time sync, intervals, VCPU maps. No Qt here."""
