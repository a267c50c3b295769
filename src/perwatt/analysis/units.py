"""Unit conversions and the stated defaults that price energy, in one place."""

J_PER_KWH = 3.6e6
# The default electricity price: the US average commercial price in 2024, 12.7 ¢/kWh (EIA,
# Electric Power Monthly, table 5.3), rounded. Every table that uses it says so.
DEFAULT_USD_PER_KWH = 0.13
