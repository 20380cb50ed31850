"""Fees and waivers of online public services (SPEC §8): the catalogue, versioned fee schedules
and waiver rules, quotes, applications with numbered receipts, and revenue foregone."""
