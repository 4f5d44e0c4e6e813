# main.py: runs after boot.py at every boot. The app itself is the frozen module doorlock.
import doorlock

doorlock.main()
