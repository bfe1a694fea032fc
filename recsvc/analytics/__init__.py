"""What recommendations earn: A/B statistics, attribution of what shoppers did to the
lists they were shown, and KPIs per variant, surface and segment. Reads logs; imports
only the core."""
