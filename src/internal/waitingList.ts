/**
 * A list of objects waiting on one timer, linked through the objects themselves. On the hot path
 * a `Set` cost more than the rest of a lock cycle's bookkeeping: the first time an object is a
 * set's key, V8 gives it an identity hash and a properties store to keep it in. Adding and
 * removing here allocate nothing.
 */

/** What the list links through: each member's neighbours, `undefined` when it is not listed. */
export interface Waiting<T> {
  nextWaiting: T | undefined
  previousWaiting: T | undefined
}

/** Members in the order added, newest first. A member is in one list at most. */
export class WaitingList<T extends Waiting<T>> {
  first: T | undefined = undefined
  /** The oldest member. */
  last: T | undefined = undefined

  get isEmpty(): boolean {
    return this.first === undefined
  }

  add(member: T): void {
    const { first } = this
    member.nextWaiting = first
    member.previousWaiting = undefined
    if (first !== undefined) first.previousWaiting = member
    else this.last = member
    this.first = member
  }

  /** Removes a member of this list; does nothing for one that is not listed. */
  delete(member: T): void {
    const { nextWaiting, previousWaiting } = member
    if (previousWaiting === undefined) {
      if (this.first !== member) return
      this.first = nextWaiting
    } else {
      previousWaiting.nextWaiting = nextWaiting
    }
    if (nextWaiting !== undefined) nextWaiting.previousWaiting = previousWaiting
    else this.last = previousWaiting
    member.nextWaiting = undefined
    member.previousWaiting = undefined
  }

  /** The members for which `take` holds, removed from the list. */
  takeWhere(take: (member: T) => boolean): Array<T> {
    const taken: Array<T> = []
    for (let member = this.first; member !== undefined;) {
      const following: T | undefined = member.nextWaiting
      if (take(member)) {
        this.delete(member)
        taken.push(member)
      }
      member = following
    }
    return taken
  }
}
