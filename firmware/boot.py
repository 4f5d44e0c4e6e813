# boot.py: runs first at every boot, before main.py. Kept minimal: the update agent's boot step
# (confirm or roll back a trial boot) runs at the top of main.py, where the app's health checks
# are defined.
import gc

gc.collect()
