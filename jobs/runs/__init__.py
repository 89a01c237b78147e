"""The life of a run after it is recorded.

transitions.py  every state change of a run, each one conditional statement
send.py         handing recorded runs to the broker and marking them sent
"""
