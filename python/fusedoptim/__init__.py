"""fusedoptim"""
